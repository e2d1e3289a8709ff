variable "bucket_name" {
  description = "Name of the state bucket (colors-<environment>-terraform-state)."
  type        = string
}

variable "noncurrent_version_days" {
  description = "Days superseded state versions are kept (the window in which a bad apply can be undone)."
  type        = number
}
