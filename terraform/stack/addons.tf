# The EKS add-ons of every environment, pinned per Kubernetes minor in inventories/sources.yml (eks_addons): the one
# place their versions change, beside the charts the roles install. Raise kubernetes_version only together with a set
# there (the cluster module refuses an incomplete one).
locals {
  eks_addon_versions = yamldecode(file("${path.module}/../../inventories/sources.yml")).colors_sources.eks_addons
}

# Every new EBS volume of the account and region is encrypted (the StorageClass the EBS CSI add-on makes the default
# claims them): the Prometheus and VictoriaLogs volumes included.
resource "aws_ebs_encryption_by_default" "this" {
  enabled = true
}
