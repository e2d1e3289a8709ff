output "kms_key_arn" {
  description = "ARN of the environment's data key."
  value       = module.key.arn
}

output "app_secret_arn" {
  description = "ARN of the application secret (read by the deploy and the rotation playbooks)."
  value       = aws_secretsmanager_secret.app.arn
}

output "alerting_secret_arn" {
  description = "ARN of the Alertmanager receivers secret (read by the monitoring role; its value is set by people)."
  value       = aws_secretsmanager_secret.alerting.arn
}
