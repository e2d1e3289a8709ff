# The identities the pipelines assume, with no static key anywhere: GitHub's OIDC provider, and per job kind a role
# whose trust is scoped to this repository and one GitHub environment (or release tags), whose permissions are the
# AWS actions that job really calls.
#   deploy         jobs in the <env> environment: describe the cluster (kubeconfig), read the app and alerting secrets
#   rollback       jobs in <env>-rollback (rollback.yml, rotate-secrets.yml): the above, plus rotating the app secret
#                  and the database login (the RDS-managed master secret read)
#   release        tag builds (refs/tags/v*): push the image to ECR
#   infrastructure AWX's infrastructure job templates (AWX assumes it from its own role): Terraform's apply
# AWX's other job templates assume the deploy and rollback roles from its own role as well: no key anywhere.

locals {
  issuer = "token.actions.githubusercontent.com"
  # No release role where the registry is a replica (prod): its images come only from staging's, by replication.
  subjects = merge({
    deploy   = ["repo:${var.github_repository}:environment:${var.environment}"]
    rollback = ["repo:${var.github_repository}:environment:${var.environment}-rollback"]
    }, var.release_role ? {
    release = ["repo:${var.github_repository}:ref:refs/tags/v*"]
  } : {})
}

resource "aws_iam_openid_connect_provider" "github" {
  url            = "https://${local.issuer}"
  client_id_list = ["sts.amazonaws.com"]
  # GitHub's published thumbprints (AWS validates this issuer against its trusted CAs; the list is still required).
  thumbprint_list = ["6938fd4d98bab03faadb97b34396831e3780aea1", "1c58a3a8518e8759bf075b76b750d4f2df264fcd"] # pragma: allowlist secret
}

data "aws_iam_policy_document" "trust" {
  for_each = local.subjects

  statement {
    actions = ["sts:AssumeRoleWithWebIdentity"]
    principals {
      type        = "Federated"
      identifiers = [aws_iam_openid_connect_provider.github.arn]
    }
    condition {
      test     = "StringEquals"
      variable = "${local.issuer}:aud"
      values   = ["sts.amazonaws.com"]
    }
    condition {
      test     = each.key == "release" ? "StringLike" : "StringEquals"
      variable = "${local.issuer}:sub"
      values   = each.value
    }
  }

  # AWX's deploy, verify, rollback and rotation job templates assume the same roles from AWX's own (its execution
  # nodes' instance profile), through the "Colors AWS role" credential of awx/controller.yml. Release is GitHub's only.
  dynamic "statement" {
    for_each = each.key != "release" && length(var.awx_principal_arns) > 0 ? [1] : []
    content {
      sid     = "AWX"
      actions = ["sts:AssumeRole"]
      principals {
        type        = "AWS"
        identifiers = var.awx_principal_arns
      }
    }
  }
}

resource "aws_iam_role" "pipeline" {
  for_each = local.subjects

  name                 = "${var.name}-${each.key}"
  assume_role_policy   = data.aws_iam_policy_document.trust[each.key].json
  max_session_duration = 3600
}

data "aws_iam_policy_document" "deploy" {
  statement {
    sid       = "Kubeconfig"
    actions   = ["eks:DescribeCluster"]
    resources = [var.cluster_arn]
  }
  statement {
    sid       = "ReadSecrets"
    actions   = ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"]
    resources = [var.app_secret_arn, var.alerting_secret_arn]
  }
  statement {
    sid       = "DecryptSecrets"
    actions   = ["kms:Decrypt"]
    resources = [var.kms_key_arn]
    condition {
      test     = "StringLike"
      variable = "kms:ViaService"
      values   = ["secretsmanager.*.amazonaws.com"]
    }
  }
}

data "aws_iam_policy_document" "rollback" {
  source_policy_documents = [data.aws_iam_policy_document.deploy.json]

  statement {
    sid = "RotateAppSecret"
    # community.aws.secretsmanager_secret reads the resource policy and writes with UpdateSecret (test_aws_permissions.py).
    actions = ["secretsmanager:UpdateSecret", "secretsmanager:GetResourcePolicy", "secretsmanager:PutSecretValue", "secretsmanager:UpdateSecretVersionStage",
    "secretsmanager:ListSecretVersionIds"]
    resources = [var.app_secret_arn]
  }
  # The database login's rotation (alternating users): find the instance's RDS-managed master secret, read it.
  statement {
    sid       = "FindDatabaseMaster"
    actions   = ["rds:DescribeDBInstances"]
    resources = [var.db_instance_arn]
  }
  statement {
    sid       = "ReadDatabaseMaster"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [var.db_master_secret_arn]
  }
  statement {
    sid       = "NewKeys"
    actions   = ["secretsmanager:GetRandomPassword"]
    resources = ["*"] # the action has no resource
  }
  statement {
    sid       = "EncryptSecrets"
    actions   = ["kms:GenerateDataKey"]
    resources = [var.kms_key_arn]
    condition {
      test     = "StringLike"
      variable = "kms:ViaService"
      values   = ["secretsmanager.*.amazonaws.com"]
    }
  }
}

data "aws_iam_policy_document" "release" {
  count = var.release_role ? 1 : 0

  statement {
    sid       = "RegistryLogin"
    actions   = ["ecr:GetAuthorizationToken"]
    resources = ["*"] # the action has no resource
  }
  statement {
    sid = "PushImage"
    actions = ["ecr:BatchCheckLayerAvailability", "ecr:InitiateLayerUpload", "ecr:UploadLayerPart",
    "ecr:CompleteLayerUpload", "ecr:PutImage", "ecr:BatchGetImage", "ecr:DescribeImages"]
    resources = [var.repository_arn]
  }
}

resource "aws_iam_role_policy" "pipeline" {
  for_each = merge({
    deploy   = data.aws_iam_policy_document.deploy.json
    rollback = data.aws_iam_policy_document.rollback.json
  }, var.release_role ? { release = data.aws_iam_policy_document.release[0].json } : {})

  name   = "${var.name}-${each.key}"
  role   = aws_iam_role.pipeline[each.key].id
  policy = each.value
}

data "aws_iam_policy_document" "infrastructure_trust" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "AWS"
      identifiers = var.awx_principal_arns
    }
  }
}

# Terraform applies every resource of the stack. Only AWX's role may assume this one, and only its infrastructure job
# templates do (after their typed confirmation): every service but IAM (PowerUserAccess), and IAM only on the
# stack's own roles, policies and the GitHub OIDC provider.
resource "aws_iam_role" "infrastructure" {
  name                 = "${var.name}-infrastructure"
  assume_role_policy   = data.aws_iam_policy_document.infrastructure_trust.json
  max_session_duration = 3600
}

resource "aws_iam_role_policy_attachment" "infrastructure" {
  role       = aws_iam_role.infrastructure.name
  policy_arn = "arn:aws:iam::aws:policy/PowerUserAccess"
}

data "aws_caller_identity" "current" {}

data "aws_iam_policy_document" "infrastructure_iam" {
  statement {
    sid     = "StackIdentities"
    actions = ["iam:*"]
    resources = [
      "arn:aws:iam::${data.aws_caller_identity.current.account_id}:role/colors-*",
      "arn:aws:iam::${data.aws_caller_identity.current.account_id}:policy/colors-*",
      "arn:aws:iam::${data.aws_caller_identity.current.account_id}:oidc-provider/${local.issuer}",
    ]
  }
  statement {
    sid       = "ServiceLinkedRoles"
    actions   = ["iam:CreateServiceLinkedRole"]
    resources = ["arn:aws:iam::${data.aws_caller_identity.current.account_id}:role/aws-service-role/*"]
  }
}

resource "aws_iam_role_policy" "infrastructure_iam" {
  name   = "${var.name}-infrastructure-iam"
  role   = aws_iam_role.infrastructure.id
  policy = data.aws_iam_policy_document.infrastructure_iam.json
}
