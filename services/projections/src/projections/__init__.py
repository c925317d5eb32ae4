"""The projections service: the read model of opportunity events, its reports and BI tables."""
