"""The projections database (tables, views, queries, the store, migrations) and the feed client."""
