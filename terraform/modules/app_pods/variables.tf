variable "name" {
  description = "Name prefix (colors-<environment>)."
  type        = string
}

variable "vpc_id" {
  description = "VPC of the cluster."
  type        = string
}

variable "app_port" {
  description = "Port the Colors container listens on."
  type        = number
}

variable "cluster_security_group_id" {
  description = "The security group EKS creates for the cluster: on the nodes, CoreDNS and every pod without a policy."
  type        = string
}

variable "database_security_group_id" {
  description = "Security group of the database."
  type        = string
}
