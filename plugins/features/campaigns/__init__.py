"""Campaigns: grouped messages and prevention campaigns to a segment of patients."""
