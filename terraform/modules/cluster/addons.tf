# The cluster's add-ons, installed and upgraded by EKS at pinned versions (terraform/stack/addons.tf): networking
# with network-policy enforcement, DNS, kube-proxy, the Pod Identity agent, the EBS CSI driver with the default
# StorageClass the Prometheus and VictoriaLogs volumes claim, and metrics-server (`kubectl top`, the runbook's first
# look at a busy node). Off only against an EKS API without add-ons (moto); the staging and prod plans hold them.

locals {
  # Needed before the nodes join (their pods' network, Service routing, Pod Identity credentials), as
  # terraform-aws-modules/eks marks them `before_compute`; the others need nodes to run on.
  addons_before_nodes = ["vpc-cni", "kube-proxy", "eks-pod-identity-agent"]
  addon_configuration = {
    # The VPC CNI's network policy agent enforces the NetworkPolicies cluster_bootstrap applies; pod ENIs give the
    # pods a SecurityGroupPolicy selects their own security group (modules/app_pods), in the standard mode in which
    # NetworkPolicies still apply to them; without TCP early demux the kubelet's probes reach such pods.
    vpc-cni = {
      enableNetworkPolicy = "true"
      env                 = { ENABLE_POD_ENI = "true", POD_SECURITY_GROUP_ENFORCING_MODE = "standard" }
      init                = { env = { DISABLE_TCP_EARLY_DEMUX = "true" } }
    }
    # A default StorageClass (gp3, WaitForFirstConsumer); the volumes are encrypted by the account's EBS
    # encryption by default (the stack's aws_ebs_encryption_by_default).
    aws-ebs-csi-driver = { defaultStorageClass = { enabled = true } }
  }
  # The add-ons that call AWS, and the role their service account gets through Pod Identity.
  addon_identities = {
    aws-ebs-csi-driver = { service_account = "ebs-csi-controller-sa", role_arn = module.ebs_csi_role.arn }
  }
  addons = var.addons ? var.addon_versions : {}
}

module "ebs_csi_role" {
  source = "../service_role"

  name                = "${var.name}-ebs-csi"
  services            = ["pods.eks.amazonaws.com"]
  assume_actions      = ["sts:AssumeRole", "sts:TagSession"]
  managed_policy_arns = ["arn:aws:iam::aws:policy/service-role/AmazonEBSCSIDriverPolicy"]
}

resource "aws_eks_addon" "before_nodes" {
  for_each = { for name, version in local.addons : name => version if contains(local.addons_before_nodes, name) }

  cluster_name                = aws_eks_cluster.this.name
  addon_name                  = each.key
  addon_version               = each.value
  configuration_values        = try(jsonencode(local.addon_configuration[each.key]), null)
  resolve_conflicts_on_create = "OVERWRITE"
  resolve_conflicts_on_update = "OVERWRITE"
}

resource "aws_eks_addon" "after_nodes" {
  for_each = { for name, version in local.addons : name => version if !contains(local.addons_before_nodes, name) }

  cluster_name                = aws_eks_cluster.this.name
  addon_name                  = each.key
  addon_version               = each.value
  configuration_values        = try(jsonencode(local.addon_configuration[each.key]), null)
  resolve_conflicts_on_create = "OVERWRITE"
  resolve_conflicts_on_update = "OVERWRITE"

  dynamic "pod_identity_association" {
    for_each = contains(keys(local.addon_identities), each.key) ? [local.addon_identities[each.key]] : []
    content {
      service_account = pod_identity_association.value.service_account
      role_arn        = pod_identity_association.value.role_arn
    }
  }

  depends_on = [aws_eks_node_group.default, aws_eks_addon.before_nodes]
}
