"""flipflow.sim"""
