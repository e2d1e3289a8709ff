output "oidc_provider_arn" {
  description = "ARN of GitHub's OIDC provider in the account."
  value       = aws_iam_openid_connect_provider.github.arn
}

output "role_arns" {
  description = "ARN of each pipeline role: deploy, rollback, release (the AWS_*_ROLE_ARN variables of the GitHub environments), infrastructure (AWX)."
  value       = merge({ for k, r in aws_iam_role.pipeline : k => r.arn }, { infrastructure = aws_iam_role.infrastructure.arn })
}
