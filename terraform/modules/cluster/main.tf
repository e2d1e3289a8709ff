# EKS control plane with a private API endpoint, envelope encryption of Kubernetes Secrets and every control
# plane log type, plus one managed node group in the private subnets.

module "cluster_role" {
  source = "../service_role"

  name           = "${var.name}-cluster"
  services       = ["eks.amazonaws.com"]
  assume_actions = ["sts:AssumeRole", "sts:TagSession"]
  # AmazonEKSVPCResourceController: the control plane's VPC resource controller gives pods their own network
  # interfaces (trunk and branch ENIs), which security groups for pods need (modules/app_pods).
  managed_policy_arns = ["arn:aws:iam::aws:policy/AmazonEKSClusterPolicy",
  "arn:aws:iam::aws:policy/AmazonEKSVPCResourceController"]
}

resource "aws_security_group" "cluster" {
  name        = "${var.name}-cluster-api"
  description = "EKS API endpoint: HTTPS from the allowed networks only"
  vpc_id      = var.vpc_id

  tags = { Name = "${var.name}-cluster-api" }
}

resource "aws_vpc_security_group_ingress_rule" "cluster_api" {
  for_each = toset(var.api_allowed_cidrs)

  security_group_id = aws_security_group.cluster.id
  description       = "Kubernetes API from ${each.value}"
  cidr_ipv4         = each.value
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
}

resource "aws_cloudwatch_log_group" "control_plane" {
  # EKS writes to this exact name; creating it first sets retention and encryption.
  name              = "/aws/eks/${var.name}/cluster"
  retention_in_days = var.log_retention_days
  # The signals key, whose policy lets CloudWatch Logs use it (the data key's does not: the first apply would fail).
  kms_key_id = var.log_kms_key_arn
}

resource "aws_eks_cluster" "this" {
  name     = var.name
  version  = var.kubernetes_version
  role_arn = module.cluster_role.arn

  enabled_cluster_log_types = ["api", "audit", "authenticator", "controllerManager", "scheduler"]

  vpc_config {
    subnet_ids              = var.subnet_ids
    security_group_ids      = [aws_security_group.cluster.id]
    endpoint_private_access = true
    endpoint_public_access  = false
  }

  # Access entries decide who reaches the API (modules/cluster_access); the creator keeps admin for the first apply.
  # Off only where the EKS API cannot hold them (moto returns no access_config, so every plan would replace the
  # cluster); the staging and prod plans hold it (tests/integration/test_terraform_plans.py).
  dynamic "access_config" {
    for_each = var.access_entries ? [1] : []
    content {
      authentication_mode                         = "API"
      bootstrap_cluster_creator_admin_permissions = true
    }
  }

  encryption_config {
    resources = ["secrets"]
    provider {
      key_arn = var.kms_key_arn
    }
  }

  depends_on = [module.cluster_role, aws_cloudwatch_log_group.control_plane]
}

module "node_role" {
  source = "../service_role"

  name     = "${var.name}-node"
  services = ["ec2.amazonaws.com"]
  managed_policy_arns = [
    "arn:aws:iam::aws:policy/AmazonEKSWorkerNodePolicy",
    "arn:aws:iam::aws:policy/AmazonEKS_CNI_Policy",
    "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly",
  ]
}

resource "aws_eks_node_group" "default" {
  cluster_name    = aws_eks_cluster.this.name
  node_group_name = "${var.name}-default"
  node_role_arn   = module.node_role.arn
  subnet_ids      = var.subnet_ids
  instance_types  = var.node_instance_types
  disk_size       = var.node_disk_size_gb
  version         = var.kubernetes_version

  scaling_config {
    min_size     = var.node_min_size
    desired_size = var.node_desired_size
    max_size     = var.node_max_size
  }

  update_config {
    max_unavailable = 1
  }

  lifecycle {
    # No node autoscaler: the node count is Terraform's (node_desired_size; docs/infrastructure.md says why).
    # remote_access and update_config: the AWS API emulator of the local platform returns them differently from
    # what was sent.
    ignore_changes = [remote_access, update_config]
  }

  # The pods' network, Service routing and Pod Identity run before the first node joins.
  depends_on = [module.node_role, aws_eks_addon.before_nodes]
}
