output "role_arn" {
  description = "IAM role of the AWS Load Balancer Controller (through Pod Identity)."
  value       = module.role.arn
}
