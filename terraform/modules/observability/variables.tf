variable "name" {
  description = "Name prefix (colors-<environment>)."
  type        = string
}

variable "log_retention_days" {
  description = "Days the application log group keeps events."
  type        = number
}

variable "alert_email_addresses" {
  description = "Addresses subscribed to the alert topic by e-mail (each confirms once). Alertmanager posts to the topic too."
  type        = list(string)
}
