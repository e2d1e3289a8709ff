# local: applied to the moto server of the local platform, created and destroyed by tests: smallest sizes, nothing protected.
environment = "local"

vpc_cidr           = "10.20.0.0/16"
az_count           = 2
nat_gateway_per_az = false

kubernetes_version  = "1.34"
api_allowed_cidrs   = []
node_instance_types = ["m6i.large"]
node_min_size       = 1
node_desired_size   = 2
node_max_size       = 3
node_disk_size_gb   = 50

db_engine_version           = "16"
db_instance_class           = "db.t4g.micro"
db_allocated_storage_gb     = 20
db_max_allocated_storage_gb = 50
db_multi_az                 = false
db_performance_insights     = false
db_backup_retention_days    = 1

deletion_protection          = false
secret_recovery_window_days  = 0
secret_initial_value_version = 1
registry_keep_release_images = 5
log_retention_days           = 7
alert_email_addresses        = []

domain_name = "colors.local.test"
# moto issues the certificate at once: the local zone counts as delegated.
dns_zone_delegated         = true
waf_requests_per_5_minutes = 2000
app_port                   = 8080
# The pods' shutdown delay plus graceful timeout (inventories/local: app_release_*_seconds).
alb_deregistration_delay_seconds = 25

github_repository    = "colors/colors-deploy"
awx_principal_arns   = ["arn:aws:iam::123456789012:role/colors-awx-execution"]
oncall_principal_arn = "arn:aws:iam::123456789012:role/colors-oncall"
# moto's EKS API has no access entries: they are held by a test on the staging and prod plans instead.
eks_access_entries = false
# moto's EKS API has no add-ons (nor Pod Identity): the staging and prod plans hold them.
eks_addons = false
# The local registry is the only one: the release pushes to it.
registry_replica                       = null
registry_replication_source_account_id = null
