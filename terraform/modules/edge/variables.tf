variable "name" {
  description = "Name prefix (colors-<environment>)."
  type        = string
}

variable "domain_name" {
  description = "DNS name of the dashboard; its hosted zone is created here and delegated from the parent zone."
  type        = string
}

variable "vpc_id" {
  description = "VPC of the load balancer."
  type        = string
}

variable "public_subnet_ids" {
  description = "Public subnets of the load balancer."
  type        = list(string)
}

variable "pods_security_group_id" {
  description = "Security group of the Colors pods (modules/app_pods: security groups for pods)."
  type        = string
}

variable "app_port" {
  description = "Port the Colors pods listen on."
  type        = number
}

variable "deletion_protection" {
  description = "Refuse deletion of the load balancer."
  type        = bool
}

variable "dns_zone_delegated" {
  description = "Whether the parent zone delegates to this zone's name servers. Only then does ACM validation (and so the HTTPS listener) get created."
  type        = bool
}

variable "log_kms_key_arn" {
  description = "KMS key of the WAF log group; its key policy must let CloudWatch Logs use it."
  type        = string
}

variable "log_retention_days" {
  description = "Retention of the WAF log group and of the ALB access logs."
  type        = number
}

variable "waf_requests_per_5_minutes" {
  description = "Requests one client address may make in 5 minutes before WAF blocks it."
  type        = number
}

variable "deregistration_delay_seconds" {
  description = "Seconds the ALB drains a deregistered pod (its shutdown delay plus its graceful timeout)."
  type        = number
}
