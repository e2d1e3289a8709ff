output "label" {
  description = "Runner label of the deploy jobs."
  value       = var.label
}

output "security_group_id" {
  description = "Security group the runners (and AWX's execution nodes) run with."
  value       = aws_security_group.runners.id
}
