# Where AWS-side signals go: the KMS key of logs and alerts, the application log group, and the SNS alert
# topic that CloudWatch alarms and Alertmanager's AWS receiver publish to.

data "aws_caller_identity" "current" {}

data "aws_region" "current" {}

module "key" {
  source = "../kms_key"

  alias       = "${var.name}-signals"
  description = "${var.name}: log groups and the alert topic"
  service_statements = [
    {
      sid      = "CloudWatchLogsEncrypts"
      services = ["logs.${data.aws_region.current.name}.amazonaws.com"]
      actions  = ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"]
    },
    {
      sid      = "AlarmsPublishToTheEncryptedTopic"
      services = ["cloudwatch.amazonaws.com"]
      actions  = ["kms:Decrypt", "kms:GenerateDataKey*"]
    },
  ]
}

resource "aws_cloudwatch_log_group" "app" {
  name              = "/colors/${var.name}/app"
  retention_in_days = var.log_retention_days
  kms_key_id        = module.key.arn
}

resource "aws_sns_topic" "alerts" {
  name              = "${var.name}-alerts"
  kms_master_key_id = module.key.arn
}

data "aws_iam_policy_document" "alerts" {
  statement {
    sid       = "CloudWatchAlarmsPublish"
    actions   = ["sns:Publish"]
    resources = [aws_sns_topic.alerts.arn]
    principals {
      type        = "Service"
      identifiers = ["cloudwatch.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [data.aws_caller_identity.current.account_id]
    }
  }
}

resource "aws_sns_topic_policy" "alerts" {
  arn    = aws_sns_topic.alerts.arn
  policy = data.aws_iam_policy_document.alerts.json
}

resource "aws_sns_topic_subscription" "email" {
  for_each = toset(var.alert_email_addresses)

  topic_arn = aws_sns_topic.alerts.arn
  protocol  = "email"
  endpoint  = each.value
}
