"""flipflow.host"""
