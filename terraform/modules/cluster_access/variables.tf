variable "cluster_name" {
  description = "Name of the EKS cluster."
  type        = string
}

variable "entries" {
  description = <<-EOT
    Who reaches the cluster, by name: the IAM principal and the Kubernetes groups EKS maps it to (bound by the
    cluster_bootstrap role's RBAC), and optionally an EKS access policy for the whole cluster (the infrastructure
    role's cluster admin, for bootstrap.yml).
  EOT
  type = map(object({
    principal_arn     = string
    kubernetes_groups = list(string)
    cluster_policy    = optional(string)
  }))
}

variable "enabled" {
  description = "Create the access entries (false only where the EKS API has no access entries: the local moto server)."
  type        = bool
}
