// The sandbox ("pause") process of the worker node's pods: no dependencies, built static.
module colors.local/platform/pause

go 1.25
