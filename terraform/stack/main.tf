# Colors on AWS: the one composition of the modules that every environment applies. Environments differ only in
# environments/<env>/terraform.tfvars (sizes, counts, names) and backend.hcl (where the state lives).

locals {
  name = "colors-${var.environment}"
}

module "observability" {
  source = "../modules/observability"

  name                  = local.name
  log_retention_days    = var.log_retention_days
  alert_email_addresses = var.alert_email_addresses
}

module "network" {
  source = "../modules/network"

  name                    = local.name
  cidr_block              = var.vpc_cidr
  az_count                = var.az_count
  nat_gateway_per_az      = var.nat_gateway_per_az
  flow_log_retention_days = var.log_retention_days
  kms_key_arn             = module.observability.kms_key_arn
}

module "secrets" {
  source = "../modules/secrets"

  name                  = local.name
  recovery_window_days  = var.secret_recovery_window_days
  initial_value_version = var.secret_initial_value_version
  # The database leaves a final snapshot where it is protected (skip_final_snapshot below): its key stays too.
  retain_key = var.deletion_protection
}

module "cluster" {
  source = "../modules/cluster"

  name                = local.name
  kubernetes_version  = var.kubernetes_version
  vpc_id              = module.network.vpc_id
  subnet_ids          = module.network.private_subnet_ids
  api_allowed_cidrs   = concat([module.network.vpc_cidr_block], var.api_allowed_cidrs)
  node_instance_types = var.node_instance_types
  node_min_size       = var.node_min_size
  node_desired_size   = var.node_desired_size
  node_max_size       = var.node_max_size
  node_disk_size_gb   = var.node_disk_size_gb
  log_retention_days  = var.log_retention_days
  kms_key_arn         = module.secrets.kms_key_arn
  log_kms_key_arn     = module.observability.kms_key_arn
  access_entries      = var.eks_access_entries
  addons              = var.eks_addons
  addon_versions      = lookup(local.eks_addon_versions, var.kubernetes_version, {})
}

module "registry" {
  source = "../modules/registry"

  repository_name      = "colors"
  kms_key_arn          = module.secrets.kms_key_arn
  keep_release_images  = var.registry_keep_release_images
  untagged_expiry_days = 7
  # staging's registry copies every push to prod's; prod's accepts them from staging's account only.
  replica                       = var.registry_replica
  replication_source_account_id = var.registry_replication_source_account_id
}

module "data" {
  source = "../modules/data"

  name                             = local.name
  vpc_id                           = module.network.vpc_id
  subnet_ids                       = module.network.private_subnet_ids
  app_pods_security_group_id       = module.app_pods.security_group_id
  deploy_runners_security_group_id = module.deploy_runners.security_group_id
  engine_version                   = var.db_engine_version
  instance_class                   = var.db_instance_class
  allocated_storage_gb             = var.db_allocated_storage_gb
  max_allocated_storage_gb         = var.db_max_allocated_storage_gb
  multi_az                         = var.db_multi_az
  performance_insights             = var.db_performance_insights
  backup_retention_days            = var.db_backup_retention_days
  deletion_protection              = var.deletion_protection
  skip_final_snapshot              = !var.deletion_protection
  kms_key_arn                      = module.secrets.kms_key_arn
  alarm_topic_arn                  = module.observability.alert_topic_arn
}

module "app_pods" {
  source = "../modules/app_pods"

  name                       = local.name
  vpc_id                     = module.network.vpc_id
  app_port                   = var.app_port
  cluster_security_group_id  = module.cluster.pods_security_group_id
  database_security_group_id = module.data.security_group_id
}

module "edge" {
  source = "../modules/edge"

  name                         = local.name
  domain_name                  = var.domain_name
  vpc_id                       = module.network.vpc_id
  public_subnet_ids            = module.network.public_subnet_ids
  pods_security_group_id       = module.app_pods.security_group_id
  app_port                     = var.app_port
  deregistration_delay_seconds = var.alb_deregistration_delay_seconds
  deletion_protection          = var.deletion_protection
  dns_zone_delegated           = var.dns_zone_delegated
  log_kms_key_arn              = module.observability.kms_key_arn
  log_retention_days           = var.log_retention_days
  waf_requests_per_5_minutes   = var.waf_requests_per_5_minutes
}

module "pipeline_identity" {
  source = "../modules/pipeline_identity"

  name                 = local.name
  environment          = var.environment
  github_repository    = var.github_repository
  cluster_arn          = module.cluster.cluster_arn
  app_secret_arn       = module.secrets.app_secret_arn
  alerting_secret_arn  = module.secrets.alerting_secret_arn
  kms_key_arn          = module.secrets.kms_key_arn
  db_instance_arn      = module.data.instance_arn
  db_master_secret_arn = module.data.master_secret_arn
  repository_arn       = module.registry.repository_arn
  release_role         = module.registry.receives_releases
  awx_principal_arns   = var.awx_principal_arns
}

module "load_balancer_controller" {
  source = "../modules/load_balancer_controller"

  name             = local.name
  cluster_name     = module.cluster.cluster_name
  target_group_arn = module.edge.target_group_arn
  pod_identity     = var.eks_addons
}

module "deploy_runners" {
  source = "../modules/deploy_runners"

  name                       = local.name
  label                      = "colors-deploy-${var.environment}"
  vpc_id                     = module.network.vpc_id
  cluster_security_group_id  = module.cluster.cluster_security_group_id
  database_security_group_id = module.data.security_group_id
}

module "cluster_access" {
  source = "../modules/cluster_access"

  cluster_name = module.cluster.cluster_name
  enabled      = var.eks_access_entries
  entries = {
    deploy   = { principal_arn = module.pipeline_identity.role_arns.deploy, kubernetes_groups = ["colors:deployers"] }
    rollback = { principal_arn = module.pipeline_identity.role_arns.rollback, kubernetes_groups = ["colors:deployers"] }
    oncall   = { principal_arn = var.oncall_principal_arn, kubernetes_groups = ["colors:oncall"] }
    infrastructure = {
      principal_arn     = module.pipeline_identity.role_arns.infrastructure
      kubernetes_groups = []
      cluster_policy    = "AmazonEKSClusterAdminPolicy"
    }
  }
}
