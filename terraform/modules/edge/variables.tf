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

variable "target_cidrs" {
  description = "CIDR blocks of the pods the load balancer forwards to (the private subnets)."
  type        = list(string)
}

variable "app_port" {
  description = "Port the Colors pods listen on."
  type        = number
}

variable "deletion_protection" {
  description = "Refuse deletion of the load balancer."
  type        = bool
}
