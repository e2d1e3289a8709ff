variable "name" {
  description = "Name prefix of every resource (colors-<environment>)."
  type        = string
}

variable "cidr_block" {
  description = "CIDR block of the VPC."
  type        = string
}

variable "az_count" {
  description = "Number of availability zones; one public and one private subnet in each."
  type        = number

  validation {
    condition     = var.az_count >= 2 && var.az_count <= 4
    error_message = "az_count must be between 2 and 4: the cluster and the database need two zones at least."
  }
}

variable "nat_gateway_per_az" {
  description = "One NAT gateway per zone (true: survives a zone outage) or one shared NAT gateway (false: cheaper)."
  type        = bool
}

variable "flow_log_retention_days" {
  description = "Days the VPC flow logs are kept."
  type        = number
}

variable "kms_key_arn" {
  description = "KMS key that encrypts the flow log group."
  type        = string
}
