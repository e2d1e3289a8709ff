# The security group of the Colors pods (and of their migration Jobs): EKS's security groups for pods give it to them
# (the SecurityGroupPolicy that roles/cluster_bootstrap renders in the application namespace; the VPC CNI's pod ENIs,
# modules/cluster), so that the database admits these pods and no other - a pod of another namespace has the
# cluster's security group, which the database's does not name. NetworkPolicies still apply to the pods (the VPC
# CNI's standard enforcing mode).

resource "aws_security_group" "app_pods" {
  #checkov:skip=CKV2_AWS_5:The pods' network interfaces attach it, through the SecurityGroupPolicy cluster_bootstrap applies (EKS security groups for pods).
  name        = "${var.name}-app-pods"
  description = "Colors pods: the app port from the load balancer and the nodes; out to DNS and the database"
  vpc_id      = var.vpc_id

  tags = { Name = "${var.name}-app-pods" }
}

# The kubelet's probes and the in-cluster Prometheus' scrapes come from the nodes and from pods of the cluster's
# security group (its other pods keep it).
resource "aws_vpc_security_group_ingress_rule" "from_cluster" {
  security_group_id            = aws_security_group.app_pods.id
  description                  = "The app port from the nodes (kubelet probes) and the cluster's pods (Prometheus)"
  referenced_security_group_id = var.cluster_security_group_id
  ip_protocol                  = "tcp"
  from_port                    = var.app_port
  to_port                      = var.app_port
}

resource "aws_vpc_security_group_egress_rule" "dns" {
  for_each = toset(["tcp", "udp"])

  security_group_id            = aws_security_group.app_pods.id
  description                  = "DNS (${upper(each.key)}) to CoreDNS, on the cluster's security group"
  referenced_security_group_id = var.cluster_security_group_id
  ip_protocol                  = each.key
  from_port                    = 53
  to_port                      = 53
}

resource "aws_vpc_security_group_egress_rule" "database" {
  security_group_id            = aws_security_group.app_pods.id
  description                  = "PostgreSQL"
  referenced_security_group_id = var.database_security_group_id
  ip_protocol                  = "tcp"
  from_port                    = 5432
  to_port                      = 5432
}
