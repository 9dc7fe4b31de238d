"""flipflow.training"""
