#!/usr/bin/python3
# timeout: 300
"""The abuse suite of test_abuse.py against a TLS listener, with the same
expected answers: wsflowd frames TLS listeners itself, on the one data
path plain listeners use, so every refusal, close code and timeout must be
the same (a case's name carries "[tls]")."""
import os
import runpy

os.environ['WSFLOW_ABUSE_TLS'] = '1'
runpy.run_path(os.path.join(os.path.dirname(os.path.abspath(__file__)),
                            'test_abuse.py'), run_name='__main__')
