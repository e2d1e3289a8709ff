output "dashboard_url" {
  description = "Public URL of the Colors dashboard."
  value       = "https://${var.domain_name}/"
}

output "name_servers" {
  description = "Name servers of the zone, to delegate from the parent zone."
  value       = aws_route53_zone.this.name_servers
}

output "target_group_arn" {
  description = "Target group the Colors pods are registered in."
  value       = aws_lb_target_group.app.arn
}

output "load_balancer_dns_name" {
  description = "DNS name of the load balancer."
  value       = aws_lb.this.dns_name
}
