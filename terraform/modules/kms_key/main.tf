# A customer managed, rotating KMS key with an explicit key policy: the account administers it (AWS's default
# key policy, so IAM policies grant its use), plus the AWS services that must use it on their own.

data "aws_caller_identity" "current" {}

data "aws_iam_policy_document" "key" {
  #checkov:skip=CKV_AWS_109:A key policy: Resource "*" is this key only, and the account statement is AWS's default key policy (IAM policies then grant use).
  #checkov:skip=CKV_AWS_111:A key policy: Resource "*" is this key only, and the account statement is AWS's default key policy (IAM policies then grant use).
  #checkov:skip=CKV_AWS_356:A key policy: Resource "*" is this key only, and the account statement is AWS's default key policy (IAM policies then grant use).
  statement {
    sid       = "AccountAdministersTheKey"
    actions   = ["kms:*"]
    resources = ["*"]
    principals {
      type        = "AWS"
      identifiers = ["arn:aws:iam::${data.aws_caller_identity.current.account_id}:root"]
    }
  }

  dynamic "statement" {
    for_each = var.service_statements
    content {
      sid       = statement.value.sid
      actions   = statement.value.actions
      resources = ["*"]
      principals {
        type        = "Service"
        identifiers = statement.value.services
      }
    }
  }
}

resource "aws_kms_key" "this" {
  count = var.retain ? 0 : 1

  description             = var.description
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy                  = data.aws_iam_policy_document.key.json
}

# A key that encrypts what outlives the stack (the database's final snapshot, its automated backups): `terraform
# destroy` stops at it (prevent_destroy cannot depend on a variable, hence a resource of its own). The runbook's
# "Destroying an environment" (docs/runbook.md) says how it is retired once nothing it encrypts is kept.
resource "aws_kms_key" "retained" {
  count = var.retain ? 1 : 0

  description             = var.description
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy                  = data.aws_iam_policy_document.key.json

  lifecycle {
    prevent_destroy = true
  }
}

moved {
  from = aws_kms_key.this
  to   = aws_kms_key.this[0]
}

locals {
  key = var.retain ? aws_kms_key.retained[0] : aws_kms_key.this[0]
}

resource "aws_kms_alias" "this" {
  name          = "alias/${var.alias}"
  target_key_id = local.key.key_id
}
