# Exported by the infrastructure role as the fact `infrastructure_outputs` for later plays. No output carries
# a secret value: only ARNs of secrets.

output "environment" {
  description = "Environment of this state."
  value       = var.environment
}

output "vpc_id" {
  description = "VPC of the environment."
  value       = module.network.vpc_id
}

output "private_subnet_ids" {
  description = "Private subnets."
  value       = module.network.private_subnet_ids
}

output "cluster_name" {
  description = "EKS cluster name (aws eks update-kubeconfig --name ...)."
  value       = module.cluster.cluster_name
}

output "deploy_runner" {
  description = "Where deploys run: the label self-hosted runners in the private subnets register with (the deploy jobs' runs-on), their security group and subnets. The API endpoint is private only."
  value = {
    label             = module.deploy_runners.label
    security_group_id = module.deploy_runners.security_group_id
    subnet_ids        = module.network.private_subnet_ids
    endpoint_public   = module.cluster.endpoint_public_access
  }
}

output "cluster_endpoint" {
  description = "Kubernetes API URL."
  value       = module.cluster.cluster_endpoint
}

output "registry_url" {
  description = "ECR repository URL of the Colors image."
  value       = module.registry.repository_url
}

output "app_secret_arn" {
  description = "Secrets Manager ARN of the application keys."
  value       = module.secrets.app_secret_arn
}

output "db_endpoint" {
  description = "host:port of PostgreSQL."
  value       = module.data.endpoint
}

output "db_master_secret_arn" {
  description = "Secrets Manager ARN of the database master credentials."
  value       = module.data.master_secret_arn
}

output "alert_topic_arn" {
  description = "SNS topic of alerts."
  value       = module.observability.alert_topic_arn
}

output "app_log_group_name" {
  description = "CloudWatch log group of the application."
  value       = module.observability.app_log_group_name
}

output "dashboard_url" {
  description = "Public URL of the dashboard."
  value       = module.edge.dashboard_url
}

output "target_group_arn" {
  description = "ALB target group of the Colors pods."
  value       = module.edge.target_group_arn
}

output "pipeline_role_arns" {
  description = "Roles of the pipelines: deploy, rollback, release (GitHub environment variables), infrastructure (AWX)."
  value       = module.pipeline_identity.role_arns
}

output "name_servers" {
  description = "Name servers of the dashboard's zone: delegate the domain to them in the parent zone, then apply with dns_zone_delegated = true."
  value       = module.edge.name_servers
}

output "load_balancer_controller_role_arn" {
  description = "IAM role of the AWS Load Balancer Controller, which registers the pods in target_group_arn (a TargetGroupBinding)."
  value       = module.load_balancer_controller.role_arn
}
