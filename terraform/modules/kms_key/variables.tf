variable "alias" {
  description = "Alias of the key, without the alias/ prefix."
  type        = string
}

variable "description" {
  description = "What the key protects."
  type        = string
}

variable "service_statements" {
  description = "AWS services that use the key directly (beyond IAM principals of the account): sid, service principals, actions."
  type = list(object({
    sid      = string
    services = list(string)
    actions  = list(string)
  }))
  default = []
}

variable "retain" {
  description = "Keep the key when the stack is destroyed (prevent_destroy): it encrypts data that outlives the stack."
  type        = bool
  default     = false
}
