"""gitops"""
