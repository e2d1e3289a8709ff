# Every environment sets every variable below in environments/<env>/terraform.tfvars (no defaults: a missing
# value is an error, never a silent difference between staging and prod). aws_region and aws_endpoint_url come
# from the Ansible inventory through the infrastructure role.

variable "environment" {
  description = "Environment name."
  type        = string

  validation {
    condition     = contains(["local", "staging", "prod"], var.environment)
    error_message = "environment must be one of local, staging, prod."
  }
}

variable "aws_region" {
  description = "AWS region of the environment."
  type        = string
}

variable "aws_endpoint_url" {
  description = "AWS API endpoint override (the local platform's moto server); empty for real AWS."
  type        = string
  default     = ""
}

variable "vpc_cidr" {
  description = "CIDR block of the VPC."
  type        = string
}

variable "az_count" {
  description = "Availability zones used."
  type        = number
}

variable "nat_gateway_per_az" {
  description = "One NAT gateway per zone (true) or one shared (false)."
  type        = bool
}

variable "kubernetes_version" {
  description = "Kubernetes minor version of EKS."
  type        = string
}

variable "api_allowed_cidrs" {
  description = "Extra CIDR blocks allowed to reach the private Kubernetes API (the VPC is always allowed)."
  type        = list(string)
}

variable "node_instance_types" {
  description = "Instance types of the node group (Nitro types with trunk ENIs: the Colors pods get their own security group)."
  type        = list(string)

  validation {
    condition     = alltrue([for t in var.node_instance_types : !can(regex("^t[0-9]", t))])
    error_message = "node_instance_types: the t family has no trunk network interface, so security groups for pods (which the database's access needs) cannot run there; choose e.g. m6i.large."
  }
}

variable "node_min_size" {
  description = "Fewest nodes."
  type        = number
}

variable "node_desired_size" {
  description = "Nodes at creation."
  type        = number
}

variable "node_max_size" {
  description = "Most nodes."
  type        = number
}

variable "node_disk_size_gb" {
  description = "Root volume of each node."
  type        = number
}

variable "db_engine_version" {
  description = "PostgreSQL major version. RDS applies minor upgrades itself (auto_minor_version_upgrade), so a pinned minor would make Terraform plan a downgrade after each one."
  type        = string

  validation {
    condition     = can(regex("^[0-9]+$", var.db_engine_version))
    error_message = "db_engine_version must be a major version only (e.g. \"16\"): RDS upgrades minors itself, and Terraform would try to downgrade a pinned one."
  }
}

variable "db_instance_class" {
  description = "Database instance class."
  type        = string
}

variable "db_allocated_storage_gb" {
  description = "Initial database storage."
  type        = number
}

variable "db_max_allocated_storage_gb" {
  description = "Database storage autoscaling ceiling."
  type        = number
}

variable "db_multi_az" {
  description = "Multi-AZ standby."
  type        = bool
}

variable "db_performance_insights" {
  description = "Performance Insights on the database."
  type        = bool
}

variable "db_backup_retention_days" {
  description = "Days of backups and point-in-time recovery."
  type        = number
}

variable "deletion_protection" {
  description = "Protect the database and the load balancer from deletion; false only for throw-away environments."
  type        = bool
}

variable "secret_recovery_window_days" {
  description = "Days a deleted secret can be restored (0 only for throw-away environments)."
  type        = number
}

variable "secret_initial_value_version" {
  description = "Raise to regenerate the initial application secret values."
  type        = number
}

variable "registry_keep_release_images" {
  description = "Release images kept in ECR."
  type        = number
}

variable "log_retention_days" {
  description = "Days application, control plane and flow logs are kept."
  type        = number
}

variable "alert_email_addresses" {
  description = "E-mail subscribers of the alert topic."
  type        = list(string)
}

variable "domain_name" {
  description = "DNS name of the dashboard."
  type        = string
}

variable "app_port" {
  description = "Port the Colors pods listen on."
  type        = number
}

variable "github_repository" {
  description = "owner/name of the GitHub repository whose workflows assume the pipeline roles."
  type        = string
}

variable "awx_principal_arns" {
  description = "IAM principals AWX runs as; they may assume the infrastructure role."
  type        = list(string)
}

variable "oncall_principal_arn" {
  description = "IAM role the on-call engineers sign in as (their SSO permission set's role): Kubernetes group colors:oncall."
  type        = string
}

variable "eks_access_entries" {
  description = "Create the EKS access entries (false only on the local moto server, whose EKS API has none)."
  type        = bool
}

variable "registry_replica" {
  description = "Where the registry copies every push (staging: prod's account and region; null elsewhere): the release pushes once, and both environments run the same digest."
  type = object({
    account_id = string
    region     = string
  })
}

variable "registry_replication_source_account_id" {
  description = "The account whose registry replicates into this one (prod: staging's; null elsewhere). Such a registry gets no release role: its images come only by replication."
  type        = string
}

variable "alb_deregistration_delay_seconds" {
  description = "Seconds the ALB drains a leaving pod: the inventory's app_release_shutdown_delay_seconds plus app_release_graceful_timeout_seconds."
  type        = number
}

variable "eks_addons" {
  description = "Install the EKS managed add-ons of terraform/stack/addons.tf (false only on the local moto server, whose EKS API has none)."
  type        = bool
}

variable "dns_zone_delegated" {
  description = "Whether the parent zone delegates to the dashboard's zone (output name_servers). false for the first apply of a new environment: the certificate is validated, and HTTPS served, from the apply after the delegation."
  type        = bool
}

variable "waf_requests_per_5_minutes" {
  description = "Requests one client address may make to the dashboard in 5 minutes before AWS WAF blocks it."
  type        = number
}
