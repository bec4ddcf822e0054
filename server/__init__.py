"""Linli (邻里): the aiohttp server between PouchDB clients and CouchDB."""
