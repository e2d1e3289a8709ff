# EKS access entries (authentication mode API): each pipeline identity and the on-call group mapped to the Kubernetes
# groups the cluster_bootstrap role binds, so the deploy role authenticates as colors:deployers instead of getting 401
# (EKS maps only the cluster's creator by default). The infrastructure role gets the cluster admin policy: only
# bootstrap.yml runs as admin.

resource "aws_eks_access_entry" "this" {
  for_each = var.enabled ? var.entries : {}

  cluster_name      = var.cluster_name
  principal_arn     = each.value.principal_arn
  kubernetes_groups = each.value.kubernetes_groups
  type              = "STANDARD"
}

resource "aws_eks_access_policy_association" "this" {
  for_each = var.enabled ? { for k, v in var.entries : k => v if v.cluster_policy != null } : {}

  cluster_name  = var.cluster_name
  principal_arn = each.value.principal_arn
  policy_arn    = "arn:aws:eks::aws:cluster-access-policy/${each.value.cluster_policy}"

  access_scope {
    type = "cluster"
  }

  depends_on = [aws_eks_access_entry.this]
}
