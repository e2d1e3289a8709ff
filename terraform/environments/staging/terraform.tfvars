# staging: mirrors prod with the same modules; smaller sizes and counts.
environment = "staging"

vpc_cidr           = "10.30.0.0/16"
az_count           = 3
nat_gateway_per_az = false

kubernetes_version  = "1.34"
api_allowed_cidrs   = ["10.99.0.0/16"]
node_instance_types = ["m6i.large"]
node_min_size       = 2
node_desired_size   = 3
node_max_size       = 6
node_disk_size_gb   = 50

db_engine_version           = "16"
db_instance_class           = "db.t4g.medium"
db_allocated_storage_gb     = 50
db_max_allocated_storage_gb = 200
db_multi_az                 = true
db_performance_insights     = true
db_backup_retention_days    = 7

deletion_protection          = true
secret_recovery_window_days  = 7
secret_initial_value_version = 1
registry_keep_release_images = 30
log_retention_days           = 30
alert_email_addresses        = ["colors-staging-alerts@example.com"]

domain_name = "staging.colors.example.com"
# false for the first apply of a new environment; delegate to output name_servers, then set true.
dns_zone_delegated         = true
waf_requests_per_5_minutes = 2000
app_port                   = 8080
# The pods' shutdown delay plus graceful timeout (inventories/staging: app_release_*_seconds).
alb_deregistration_delay_seconds = 30

github_repository    = "colors/colors-deploy"
awx_principal_arns   = ["arn:aws:iam::111111111111:role/colors-awx-execution"]
oncall_principal_arn = "arn:aws:iam::111111111111:role/colors-oncall"
eks_access_entries   = true
eks_addons           = true
# The release pushes here; ECR copies every image to prod's registry (same digest).
registry_replica                       = { account_id = "222222222222", region = "eu-west-1" }
registry_replication_source_account_id = null
