variable "name" {
  description = "Identifier of the database instance (colors-<environment>)."
  type        = string
}

variable "vpc_id" {
  description = "VPC of the database."
  type        = string
}

variable "subnet_ids" {
  description = "Private subnets of the database (two zones at least)."
  type        = list(string)
}

variable "app_pods_security_group_id" {
  description = "Security group of the Colors pods (modules/app_pods): the application reaches PostgreSQL with it."
  type        = string
}

variable "deploy_runners_security_group_id" {
  description = "Security group of the deploy runners and AWX's execution nodes: the login's rotation connects with it."
  type        = string
}

variable "engine_version" {
  description = "PostgreSQL major version (RDS applies the minor upgrades)."
  type        = string
}

variable "instance_class" {
  description = "Instance class."
  type        = string
}

variable "allocated_storage_gb" {
  description = "Initial storage; it grows automatically up to max_allocated_storage_gb."
  type        = number
}

variable "max_allocated_storage_gb" {
  description = "Storage autoscaling ceiling."
  type        = number
}

variable "multi_az" {
  description = "Synchronous standby in a second zone (automatic failover)."
  type        = bool
}

variable "backup_retention_days" {
  description = "Days of automated backups and point-in-time recovery (RPO: 5 minutes within this window)."
  type        = number

  validation {
    condition     = var.backup_retention_days >= 1 && var.backup_retention_days <= 35
    error_message = "backup_retention_days must be 1 to 35: 0 would disable backups and point-in-time recovery."
  }
}

variable "deletion_protection" {
  description = "Refuse deletion of the instance (true wherever the data matters)."
  type        = bool
}

variable "skip_final_snapshot" {
  description = "Delete without a final snapshot (only for throw-away environments)."
  type        = bool
}

variable "performance_insights" {
  description = "Performance Insights (query-level load). The local AWS API (moto) does not model it: false there."
  type        = bool
}

variable "kms_key_arn" {
  description = "KMS key of the storage, the snapshots and the managed master password secret."
  type        = string
}

variable "alarm_topic_arn" {
  description = "SNS topic the database alarms notify."
  type        = string
}
