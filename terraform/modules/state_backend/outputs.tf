output "bucket_name" {
  description = "Name of the state bucket (the `bucket` of the environment's backend.hcl)."
  value       = aws_s3_bucket.state.id
}

output "kms_key_arn" {
  description = "ARN of the key that encrypts the state (the `kms_key_id` of backend.hcl)."
  value       = module.key.arn
}
