output "cluster_name" {
  description = "Name of the EKS cluster."
  value       = aws_eks_cluster.this.name
}

output "cluster_endpoint" {
  description = "URL of the Kubernetes API server."
  value       = aws_eks_cluster.this.endpoint
}

output "cluster_arn" {
  description = "ARN of the EKS cluster."
  value       = aws_eks_cluster.this.arn
}

output "cluster_security_group_id" {
  description = "Security group of the API endpoint."
  value       = aws_security_group.cluster.id
}

output "node_group_name" {
  description = "Name of the managed node group."
  value       = aws_eks_node_group.default.node_group_name
}

output "node_role_arn" {
  description = "IAM role of the nodes."
  value       = module.node_role.arn
}

output "endpoint_public_access" {
  description = "Whether the API endpoint is reachable from the internet (never: deploys run inside the VPC)."
  value       = aws_eks_cluster.this.vpc_config[0].endpoint_public_access
}

output "pods_security_group_id" {
  description = "The security group EKS creates for the cluster: on the managed nodes, so on their pods' addresses."
  value       = aws_eks_cluster.this.vpc_config[0].cluster_security_group_id
}
