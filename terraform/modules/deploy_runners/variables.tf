variable "name" {
  description = "Name prefix (colors-<env>)."
  type        = string
}

variable "label" {
  description = "Runner label the deploy jobs ask for in runs-on (colors-deploy-<env>)."
  type        = string

  validation {
    condition     = can(regex("^colors-deploy-[a-z]+$", var.label))
    error_message = "The runner label must be colors-deploy-<environment>."
  }
}

variable "vpc_id" {
  description = "VPC the runners run in."
  type        = string
}

variable "cluster_security_group_id" {
  description = "Security group of the EKS API endpoint, which admits the runners on 443."
  type        = string
}

variable "database_security_group_id" {
  description = "Security group of the database (the login's rotation connects to it)."
  type        = string
}
