output "arn" {
  description = "ARN of the key."
  value       = one(concat(aws_kms_key.this[*].arn, aws_kms_key.retained[*].arn))
}

output "key_id" {
  description = "ID of the key."
  value       = local.key.key_id
}
