# The EKS add-ons of every environment, pinned per Kubernetes minor: the one place their versions change. Raise
# kubernetes_version only together with a set here (the cluster module refuses an incomplete one). The versions are
# those `aws eks describe-addon-versions --kubernetes-version <minor> --addon-name <name>` lists for the minor; a
# version EKS does not offer fails the apply naming it (this machine reaches no AWS to check them: docs/infrastructure.md).
locals {
  eks_addon_versions = {
    "1.34" = {
      vpc-cni                = "v1.20.4-eksbuild.1"
      kube-proxy             = "v1.34.0-eksbuild.4"
      eks-pod-identity-agent = "v1.3.9-eksbuild.3"
      coredns                = "v1.12.4-eksbuild.1"
      aws-ebs-csi-driver     = "v1.51.1-eksbuild.1"
      metrics-server         = "v0.8.0-eksbuild.2"
    }
  }
}

# Every new EBS volume of the account and region is encrypted (the StorageClass the EBS CSI add-on makes the default
# claims them): the Prometheus and VictoriaLogs volumes included.
resource "aws_ebs_encryption_by_default" "this" {
  enabled = true
}
