output "security_group_id" {
  description = "Security group of the Colors pods (the SecurityGroupPolicy of roles/cluster_bootstrap names it)."
  value       = aws_security_group.app_pods.id
}

output "security_group_name" {
  description = "Its name, by which cluster_bootstrap looks it up (cluster_bootstrap_pod_security_group)."
  value       = aws_security_group.app_pods.name
}
