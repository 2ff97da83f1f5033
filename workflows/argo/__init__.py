"""argo"""
