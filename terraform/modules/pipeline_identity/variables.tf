variable "name" {
  description = "Name prefix of the roles (colors-<environment>)."
  type        = string
}

variable "environment" {
  description = "Environment name: the GitHub environments the roles trust are <environment> and <environment>-rollback."
  type        = string
}

variable "github_repository" {
  description = "owner/name of the repository whose workflows assume the roles."
  type        = string
}

variable "cluster_arn" {
  description = "ARN of the environment's EKS cluster (the deploy and rollback roles describe it for the kubeconfig)."
  type        = string
}

variable "app_secret_arn" {
  description = "ARN of the application secret (read on deploy; rotated by the rollback/rotation role)."
  type        = string
}

variable "alerting_secret_arn" {
  description = "ARN of the Alertmanager receivers secret (read by the monitoring role on deploy)."
  type        = string
}

variable "kms_key_arn" {
  description = "ARN of the key that encrypts the secrets."
  type        = string
}

variable "repository_arn" {
  description = "ARN of the ECR repository the release role pushes to."
  type        = string
}

variable "awx_principal_arns" {
  description = "IAM principals AWX runs as (its execution environment's role); they may assume the infrastructure role."
  type        = list(string)
}

variable "release_role" {
  description = "Create the release role (tag builds push the image here); false where the registry is a replica."
  type        = bool
}

variable "db_instance_arn" {
  description = "ARN of the database instance: the rotation role reads which secret holds its master credentials."
  type        = string
}

variable "db_master_secret_arn" {
  description = "ARN of the RDS-managed master secret (the rotation role sets the app login's password as the master user)."
  type        = string
}
