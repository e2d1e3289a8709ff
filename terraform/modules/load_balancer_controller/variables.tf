variable "name" {
  description = "Name prefix (colors-<environment>)."
  type        = string
}

variable "cluster_name" {
  description = "EKS cluster the controller runs in."
  type        = string
}

variable "target_group_arn" {
  description = "The one target group the controller registers pods in (the ALB's, modules/edge)."
  type        = string
}

variable "pod_identity" {
  description = "Associate the role with the controller's service account (false only against an EKS API without Pod Identity: moto)."
  type        = bool
}
