"""flipflow.generator"""
