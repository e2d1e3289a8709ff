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

variable "replica" {
  description = "The registry every push is copied to (staging's: prod's account and region); null where none is."
  type = object({
    account_id = string
    region     = string
  })
  default = null
}

variable "replication_source_account_id" {
  description = "The account whose registry copies its pushes here (prod's: staging's); null where none does."
  type        = string
  default     = null
}
