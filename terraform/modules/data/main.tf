# PostgreSQL for Colors: private, encrypted, TLS only, IAM authentication, automated backups with point-in-time
# recovery (RPO 5 min), optional multi-AZ standby (RTO: failover in 1-2 min). The master password is created and
# rotated by RDS in Secrets Manager (manage_master_user_password): it never exists in Terraform.

resource "aws_db_subnet_group" "this" {
  name       = var.name
  subnet_ids = var.subnet_ids
}

resource "aws_security_group" "db" {
  name        = "${var.name}-db"
  description = "PostgreSQL from the Colors pods and the deploy runners only (their security groups)"
  vpc_id      = var.vpc_id

  tags = { Name = "${var.name}-db" }
}

# By security group, not by subnet: every pod of the cluster has an address in the private subnets, and only the
# Colors pods (security groups for pods, modules/app_pods) and the runners that rotate the login hold these groups.
resource "aws_vpc_security_group_ingress_rule" "from_app_pods" {
  security_group_id            = aws_security_group.db.id
  description                  = "PostgreSQL from the Colors pods and their migration Jobs"
  referenced_security_group_id = var.app_pods_security_group_id
  ip_protocol                  = "tcp"
  from_port                    = 5432
  to_port                      = 5432
}

resource "aws_vpc_security_group_ingress_rule" "from_deploy_runners" {
  security_group_id            = aws_security_group.db.id
  description                  = "PostgreSQL from the deploy runners and AWX (the login's rotation)"
  referenced_security_group_id = var.deploy_runners_security_group_id
  ip_protocol                  = "tcp"
  from_port                    = 5432
  to_port                      = 5432
}

resource "aws_db_parameter_group" "this" {
  name   = var.name
  family = "postgres${split(".", var.engine_version)[0]}"

  parameter {
    name  = "rds.force_ssl"
    value = "1"
  }

  parameter {
    name  = "log_min_duration_statement"
    value = "500"
  }

  parameter {
    name  = "log_connections"
    value = "1"
  }
}

module "monitoring_role" {
  source = "../service_role"

  name                = "${var.name}-rds-monitoring"
  services            = ["monitoring.rds.amazonaws.com"]
  managed_policy_arns = ["arn:aws:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole"]
}

resource "aws_db_instance" "this" {
  identifier     = var.name
  engine         = "postgres"
  engine_version = var.engine_version
  instance_class = var.instance_class
  db_name        = "colors"
  username       = "colors_admin"

  manage_master_user_password         = true
  master_user_secret_kms_key_id       = var.kms_key_arn
  iam_database_authentication_enabled = true

  allocated_storage     = var.allocated_storage_gb
  max_allocated_storage = var.max_allocated_storage_gb
  storage_type          = "gp3"
  storage_encrypted     = true
  kms_key_id            = var.kms_key_arn

  db_subnet_group_name   = aws_db_subnet_group.this.name
  vpc_security_group_ids = [aws_security_group.db.id]
  parameter_group_name   = aws_db_parameter_group.this.name
  publicly_accessible    = false
  multi_az               = var.multi_az

  backup_retention_period   = var.backup_retention_days
  backup_window             = "02:00-03:00"
  maintenance_window        = "sun:03:30-sun:04:30"
  copy_tags_to_snapshot     = true
  deletion_protection       = var.deletion_protection
  skip_final_snapshot       = var.skip_final_snapshot
  final_snapshot_identifier = "${var.name}-final"

  auto_minor_version_upgrade      = true
  enabled_cloudwatch_logs_exports = ["postgresql", "upgrade"]
  monitoring_interval             = 60
  monitoring_role_arn             = module.monitoring_role.arn
  performance_insights_enabled    = var.performance_insights
  performance_insights_kms_key_id = var.performance_insights ? var.kms_key_arn : null
}

resource "aws_cloudwatch_metric_alarm" "cpu" {
  alarm_name          = "${var.name}-db-cpu-high"
  alarm_description   = "Database CPU above 80% for 15 minutes. Runbook: docs/runbook.md#database-cpu-high"
  namespace           = "AWS/RDS"
  metric_name         = "CPUUtilization"
  dimensions          = { DBInstanceIdentifier = aws_db_instance.this.identifier }
  statistic           = "Average"
  period              = 300
  evaluation_periods  = 3
  comparison_operator = "GreaterThanThreshold"
  threshold           = 80
  alarm_actions       = [var.alarm_topic_arn]
  ok_actions          = [var.alarm_topic_arn]
}

resource "aws_cloudwatch_metric_alarm" "free_storage" {
  alarm_name          = "${var.name}-db-storage-low"
  alarm_description   = "Less than 10% of the storage ceiling free. Runbook: docs/runbook.md#database-storage-low"
  namespace           = "AWS/RDS"
  metric_name         = "FreeStorageSpace"
  dimensions          = { DBInstanceIdentifier = aws_db_instance.this.identifier }
  statistic           = "Minimum"
  period              = 300
  evaluation_periods  = 1
  comparison_operator = "LessThanThreshold"
  threshold           = var.max_allocated_storage_gb * 1024 * 1024 * 1024 / 10
  alarm_actions       = [var.alarm_topic_arn]
  ok_actions          = [var.alarm_topic_arn]
}
