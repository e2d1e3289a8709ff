output "repository_url" {
  description = "Registry URL of the image repository (the app_release_image_repository of the environment)."
  value       = aws_ecr_repository.this.repository_url
}

output "repository_arn" {
  description = "ARN of the image repository."
  value       = aws_ecr_repository.this.arn
}

output "receives_releases" {
  description = "Whether the release pipeline pushes here (false on a replica: its images come from the source)."
  value       = var.replication_source_account_id == null
}
