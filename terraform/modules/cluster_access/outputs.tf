output "kubernetes_groups" {
  description = "The Kubernetes groups each entry maps to (what the cluster_bootstrap role's RBAC binds)."
  value       = { for k, v in var.entries : k => v.kubernetes_groups }
}
