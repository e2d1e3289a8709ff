variable "repository_name" {
  description = "Name of the image repository (colors)."
  type        = string
}

variable "kms_key_arn" {
  description = "KMS key that encrypts the images at rest."
  type        = string
}

variable "keep_release_images" {
  description = "Release images (semantic version tags) kept; older ones expire."
  type        = number
}

variable "untagged_expiry_days" {
  description = "Days after which untagged images (build leftovers) expire."
  type        = number
}
