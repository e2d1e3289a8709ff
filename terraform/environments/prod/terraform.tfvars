# prod: production.
environment = "prod"

vpc_cidr           = "10.40.0.0/16"
az_count           = 3
nat_gateway_per_az = true

kubernetes_version  = "1.34"
api_allowed_cidrs   = ["10.99.0.0/16"]
node_instance_types = ["m6i.xlarge"]
node_min_size       = 3
node_desired_size   = 4
node_max_size       = 12
node_disk_size_gb   = 50

db_engine_version           = "16"
db_instance_class           = "db.r6g.large"
db_allocated_storage_gb     = 100
db_max_allocated_storage_gb = 1000
db_multi_az                 = true
db_performance_insights     = true
db_backup_retention_days    = 35

deletion_protection          = true
secret_recovery_window_days  = 30
secret_initial_value_version = 1
registry_keep_release_images = 100
log_retention_days           = 90
alert_email_addresses        = ["colors-oncall@example.com"]

domain_name = "colors.example.com"
# false for the first apply of a new environment; delegate to output name_servers, then set true.
dns_zone_delegated         = true
waf_requests_per_5_minutes = 2000
app_port                   = 8080
# The pods' shutdown delay plus graceful timeout (inventories/prod: app_release_*_seconds).
alb_deregistration_delay_seconds = 30

github_repository    = "colors/colors-deploy"
awx_principal_arns   = ["arn:aws:iam::222222222222:role/colors-awx-execution"]
oncall_principal_arn = "arn:aws:iam::222222222222:role/colors-oncall"
eks_access_entries   = true
eks_addons           = true
# Images come only from staging's registry, by ECR replication: no release role here.
registry_replica                       = null
registry_replication_source_account_id = "111111111111"
