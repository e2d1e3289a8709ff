# One-off per AWS account and environment, run by an administrator before the first infrastructure apply:
#   terraform -chdir=terraform/bootstrap init
#   terraform -chdir=terraform/bootstrap apply -var environment=prod -var aws_region=eu-west-1
# It creates the state bucket that environments/<env>/backend.hcl names. Its own (tiny) state stays local:
# keep the file with the account's records, or `terraform import` the bucket again if it is lost.
# The local environment needs no bootstrap: the local platform creates its state bucket when it starts.

terraform {
  required_version = ">= 1.11"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.100"
    }
  }
}

variable "environment" {
  description = "Environment whose state bucket is created."
  type        = string

  validation {
    condition     = contains(["staging", "prod"], var.environment)
    error_message = "environment must be staging or prod (the local platform creates the local state bucket)."
  }
}

variable "aws_region" {
  description = "Region of the state bucket (the environment's region)."
  type        = string
}

provider "aws" {
  region = var.aws_region

  default_tags {
    tags = {
      Project     = "colors"
      Environment = var.environment
      ManagedBy   = "terraform"
    }
  }
}

module "state_backend" {
  source = "../modules/state_backend"

  bucket_name             = "colors-${var.environment}-terraform-state"
  noncurrent_version_days = 90
}

output "bucket_name" {
  description = "State bucket (bucket in environments/<env>/backend.hcl)."
  value       = module.state_backend.bucket_name
}

output "kms_key_arn" {
  description = "Key of the state bucket (add as kms_key_id to environments/<env>/backend.hcl)."
  value       = module.state_backend.kms_key_arn
}
