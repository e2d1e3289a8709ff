# The image registry: tags are immutable (a version always means the same image, so a rollback redeploys
# exactly what ran before), every push is scanned, and a lifecycle policy bounds the storage.

resource "aws_ecr_repository" "this" {
  name                 = var.repository_name
  image_tag_mutability = "IMMUTABLE"

  image_scanning_configuration {
    scan_on_push = true
  }

  encryption_configuration {
    encryption_type = "KMS"
    kms_key         = var.kms_key_arn
  }
}

resource "aws_ecr_lifecycle_policy" "this" {
  repository = aws_ecr_repository.this.name
  policy = jsonencode({
    rules = [
      {
        rulePriority = 1
        description  = "Expire untagged images after ${var.untagged_expiry_days} days"
        selection = {
          tagStatus   = "untagged"
          countType   = "sinceImagePushed"
          countUnit   = "days"
          countNumber = var.untagged_expiry_days
        }
        action = { type = "expire" }
      },
      {
        rulePriority = 2
        description  = "Keep the last ${var.keep_release_images} release images"
        selection = {
          tagStatus      = "tagged"
          tagPatternList = ["*.*.*"]
          countType      = "imageCountMoreThan"
          countNumber    = var.keep_release_images
        }
        action = { type = "expire" }
      },
    ]
  })
}

# One image, one digest, in both environments: the release pushes once, to staging's registry, and ECR copies each
# push to prod's (same digest, re-encrypted with prod's key). Prod runs only what staging was given, and each
# environment's nodes pull from their own account.
resource "aws_ecr_replication_configuration" "this" {
  count = var.replica == null ? 0 : 1

  replication_configuration {
    rule {
      destination {
        region      = var.replica.region
        registry_id = var.replica.account_id
      }
      repository_filter {
        filter      = var.repository_name
        filter_type = "PREFIX_MATCH"
      }
    }
  }
}

data "aws_caller_identity" "current" {}

data "aws_region" "current" {}

# The replica's side: its registry accepts the copies from the source account, into this repository only.
data "aws_iam_policy_document" "replication" {
  count = var.replication_source_account_id == null ? 0 : 1

  statement {
    sid     = "ReplicationFromTheSourceRegistry"
    actions = ["ecr:CreateRepository", "ecr:ReplicateImage"]
    principals {
      type        = "AWS"
      identifiers = ["arn:aws:iam::${var.replication_source_account_id}:root"]
    }
    resources = [
      "arn:aws:ecr:${data.aws_region.current.name}:${data.aws_caller_identity.current.account_id}:repository/${var.repository_name}",
    ]
  }
}

resource "aws_ecr_registry_policy" "this" {
  count = var.replication_source_account_id == null ? 0 : 1

  policy = data.aws_iam_policy_document.replication[0].json
}
