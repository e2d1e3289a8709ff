variable "name" {
  description = "Name of the IAM role."
  type        = string
}

variable "services" {
  description = "AWS service principals that assume the role (eks.amazonaws.com, ...)."
  type        = list(string)
}

variable "assume_actions" {
  description = "Actions the services may use to assume the role."
  type        = list(string)
  default     = ["sts:AssumeRole"]
}

variable "managed_policy_arns" {
  description = "AWS managed policies attached to the role."
  type        = list(string)
  default     = []
}

variable "inline_policies" {
  description = "Inline policies of the role: name -> policy JSON."
  type        = map(string)
  default     = {}
}
