output "kms_key_arn" {
  description = "ARN of the key of the log groups and the alert topic."
  value       = module.key.arn
}

output "alert_topic_arn" {
  description = "ARN of the SNS alert topic."
  value       = aws_sns_topic.alerts.arn
}

output "app_log_group_name" {
  description = "CloudWatch log group of the application."
  value       = aws_cloudwatch_log_group.app.name
}
