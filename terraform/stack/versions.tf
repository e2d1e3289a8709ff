terraform {
  required_version = ">= 1.11"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.100"
    }
  }

  # Partial configuration: bucket, key, region and locking come from environments/<env>/backend.hcl
  # (and, for the local environment, the endpoint of the local AWS API from the infrastructure role).
  backend "s3" {}
}

provider "aws" {
  region = var.aws_region

  # Empty in staging and prod (real AWS). The local environment points every service at the moto server of
  # the local platform, which answers any account and any credentials.
  dynamic "endpoints" {
    for_each = var.aws_endpoint_url == "" ? [] : [var.aws_endpoint_url]
    content {
      acm            = endpoints.value
      cloudwatch     = endpoints.value
      cloudwatchlogs = endpoints.value
      ec2            = endpoints.value
      ecr            = endpoints.value
      eks            = endpoints.value
      elbv2          = endpoints.value
      iam            = endpoints.value
      kms            = endpoints.value
      rds            = endpoints.value
      route53        = endpoints.value
      s3             = endpoints.value
      secretsmanager = endpoints.value
      sns            = endpoints.value
      sts            = endpoints.value
      wafv2          = endpoints.value
    }
  }

  default_tags {
    tags = {
      Project     = "colors"
      Environment = var.environment
      ManagedBy   = "terraform"
    }
  }
}
