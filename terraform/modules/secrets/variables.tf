variable "name" {
  description = "Name prefix (colors-<environment>)."
  type        = string
}

variable "recovery_window_days" {
  description = "Days a deleted secret can still be restored (0 deletes at once: only for throw-away environments)."
  type        = number
}

variable "initial_value_version" {
  description = "Raise it to write freshly generated initial values; rotation (rotate-secrets.yml) owns them after that."
  type        = number
}

variable "retain_key" {
  description = "Keep the data key when the stack is destroyed (true where the database leaves a final snapshot)."
  type        = bool
}
